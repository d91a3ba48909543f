"""What the gallery's features cost: counting downloads on the pull path, and a page of a huge repository.

    python bench/gallery.py [--rounds 7] [--gets 2000] [--wrk-seconds 8] [--samples 60]

Starts two pier servers (SQLite + filesystem) that differ only in `count_downloads`, pushes one small image
to each, then measures, in alternating rounds so the machine's drift hits both alike:
  1. a manifest GET loop: one keep-alive connection, GETs one after another (latency per GET, and the
     server's CPU time per GET)
  2. wrk with 16 connections on the same manifest (GETs per second)
  3. in this process: what counting itself costs per GET (DownloadCounter.count), and writing a batch
     of counts for 100 images (what the server does every downloads_flush_seconds, off the event loop)
Then, on the counting server, a repository with 10,000 tags (one image, tagged through /v2/ manifest PUTs
of a thousand ?tag= each) and one with 50: the time of the first page of tags (HTML and JSON, newest
first and by name) and of a page deep in the listing. Writes bench/gallery-results.md. The issue's
targets: counting within 5% of not counting; the 10,000-tag first page under 50 ms.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from client import Connection
from harness import cpu_seconds, wrk

from tests.images import OCI_MANIFEST, digest_of, push_image
from tests.server import PierServer

ACCOUNT = {
    "PIER_ACCOUNT_ID": "123456789012",
    "PIER_ALIAS": "pierbench",
    "PIER_ACCESS_KEY_ID": "AKIABENCH",
    "PIER_SECRET_ACCESS_KEY": "bench-secret-0123456789abcdef",
}
ALIAS = ACCOUNT["PIER_ALIAS"]
HERE = Path(__file__).resolve().parent


class Server:
    def __init__(self, root: Path, counting: bool) -> None:
        env = {**ACCOUNT, "PIER_LOG_LEVEL": "warning", "PIER_COUNT_DOWNLOADS": str(counting).lower()}
        self.counting = counting
        self.server = PierServer(root / f"pier-{'on' if counting else 'off'}", None, env).start()
        self.ecr = boto3.client(
            "ecr-public",
            endpoint_url=self.server.url,
            region_name="us-east-1",
            aws_access_key_id=ACCOUNT["PIER_ACCESS_KEY_ID"],
            aws_secret_access_key=ACCOUNT["PIER_SECRET_ACCESS_KEY"],
        )
        self.ecr.create_repository(repositoryName="pulled")
        self.manifest, _ = push_image(self.ecr, "pulled", "v1")

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def connection(self) -> Connection:
        return Connection("127.0.0.1", self.server.port)

    def bearer(self, name: str) -> dict[str, str]:
        token = self.ecr.get_authorization_token()["authorizationData"]["authorizationToken"]
        basic = base64.b64encode(base64.b64decode(token)).decode()
        query = urlencode({"service": self.server.host, "scope": f"repository:{ALIAS}/{name}:pull,push"})
        reply = self.connection().request("GET", f"/token?{query}", {"Authorization": f"Basic {basic}"}, keep_body=True)
        return {"Authorization": "Bearer " + json.loads(reply.body)["token"]}

    def stop(self) -> None:
        self.server.stop()


def get_loop(server: Server, gets: int) -> tuple[float, float]:
    """(microseconds per GET, server CPU microseconds per GET) for `gets` GETs on one connection."""
    connection = server.connection()
    path = f"/v2/{ALIAS}/pulled/manifests/v1"
    headers = {"Accept": OCI_MANIFEST}
    for _ in range(50):  # warm up
        connection.request("GET", path, headers)
    cpu = cpu_seconds(server.pid)
    started = time.perf_counter()
    for _ in range(gets):
        assert connection.request("GET", path, headers).status == 200
    elapsed = time.perf_counter() - started
    used = cpu_seconds(server.pid) - cpu
    connection.close()
    return elapsed / gets * 1e6, used / gets * 1e6


def measure_counting(servers: list[Server], rounds: int, gets: int, wrk_seconds: int) -> dict[str, dict[str, float]]:
    loop: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    rps: dict[bool, list[float]] = {True: [], False: []}
    for number in range(rounds):
        order = servers if number % 2 == 0 else list(reversed(servers))
        for server in order:
            micros, cpu_micros = get_loop(server, gets)
            loop[server.counting].append(micros)
            cpu[server.counting].append(cpu_micros)
        for server in order:
            url = f"{server.server.url}/v2/{ALIAS}/pulled/manifests/v1"
            rps[server.counting].append(wrk(url, 16, wrk_seconds)["rps"])
        print(
            f"round {number + 1}: loop on/off {loop[True][-1]:.0f}/{loop[False][-1]:.0f} us, wrk on/off "
            f"{rps[True][-1]:.0f}/{rps[False][-1]:.0f} GETs/s",
            flush=True,
        )
    return {
        ("on" if counting else "off"): {
            "loop_us": statistics.median(loop[counting]),
            "cpu_us": statistics.median(cpu[counting]),
            "rps": statistics.median(rps[counting]),
        }
        for counting in (True, False)
    }


def counting_itself(root: Path) -> dict[str, float]:
    """ns per count() and ms per batch write: the whole of what counting adds, without the network's noise."""
    from pier.core.catalog import EMPTY
    from pier.core.downloads import DownloadCounter
    from pier.storage.sql import SqlMetadataStore

    counter = DownloadCounter()
    digests = [f"sha256:{i:064x}" for i in range(100)]
    calls = 1_000_000
    started = time.perf_counter()
    for i in range(calls):
        counter.count(i % 10, digests[i % 100])
    per_count = (time.perf_counter() - started) / calls * 1e9
    store = SqlMetadataStore.from_url(f"sqlite:///{root / 'counts.db'}")
    try:
        ids = [store.insert_repository(ACCOUNT["PIER_ACCOUNT_ID"], f"r{i}", 0.0, EMPTY, {}, 100).id for i in range(10)]
        writes = []
        for batch in range(20):
            counts = {(ids[i % 10], digests[i]): 1 + i for i in range(100)}
            started = time.perf_counter()
            store.add_downloads(f"batch-{batch}", counts, time.time())
            writes.append((time.perf_counter() - started) * 1000)
    finally:
        store.close()
    return {"count_ns": per_count, "batch_ms": statistics.median(writes)}


def seed_tags(server: Server, name: str, count: int) -> None:
    """One image under `count` tags: PutImage, then /v2/ manifest PUTs with a thousand ?tag= each."""
    server.ecr.create_repository(repositoryName=name)
    manifest, _ = push_image(server.ecr, name, "t00000")
    headers = {**server.bearer(name), "Content-Type": OCI_MANIFEST}
    connection = server.connection()
    for first in range(1, count, 1000):
        query = urlencode([("tag", f"t{i:05d}") for i in range(first, min(count, first + 1000))])
        reply = connection.request(
            "PUT", f"/v2/{ALIAS}/{name}/manifests/{digest_of(manifest)}?{query}", headers, body=manifest
        )
        assert reply.status == 201, reply.status
    connection.close()


def page_times(server: Server, path: str, samples: int, accept: str = "text/html") -> tuple[float, float]:
    """(median, p95) milliseconds of GET `path` on one keep-alive connection."""
    connection = server.connection()
    for _ in range(5):
        connection.request("GET", path, {"Accept": accept})
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        reply = connection.request("GET", path, {"Accept": accept}, keep_body=True)
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status == 200, (path, reply.status)
    connection.close()
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def deep_path(server: Server, name: str, pages: int) -> str:
    """The path of the page `pages` pages into the repository's tags (newest first)."""
    connection = server.connection()
    token = None
    for _ in range(pages):
        query = f"?{urlencode({'nextToken': token})}" if token else ""
        reply = connection.request("GET", f"/{ALIAS}/{name}{query}", {"Accept": "application/json"}, keep_body=True)
        token = json.loads(reply.body)["nextToken"]
    connection.close()
    return f"/{ALIAS}/{name}?{urlencode({'nextToken': token})}"


def measure_pages(server: Server, samples: int) -> dict[str, tuple[float, float]]:
    seed_tags(server, "big", 10_000)
    seed_tags(server, "small", 50)
    return {
        "50 tags, first page (HTML)": page_times(server, f"/{ALIAS}/small", samples),
        "10,000 tags, first page (HTML, newest first)": page_times(server, f"/{ALIAS}/big", samples),
        "10,000 tags, first page (HTML, by name)": page_times(server, f"/{ALIAS}/big?sort=name", samples),
        "10,000 tags, first page (JSON)": page_times(server, f"/{ALIAS}/big", samples, "application/json"),
        "10,000 tags, page 100 (HTML)": page_times(server, deep_path(server, "big", 99), samples),
        "an image page (the image of 10,000 tags)": page_times(server, f"/{ALIAS}/big:t05000", samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--wrk-seconds", type=int, default=8)
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pier-bench-gallery-") as scratch:
        root = Path(scratch)
        servers = [Server(root, True), Server(root, False)]
        try:
            counting = measure_counting(servers, args.rounds, args.gets, args.wrk_seconds)
            counting["itself"] = counting_itself(root)
            pages = measure_pages(servers[0], args.samples)
        finally:
            for server in servers:
                server.stop()
    write_report(counting, pages, args)


def write_report(counting: dict[str, dict[str, float]], pages: dict[str, tuple[float, float]], args: Any) -> None:
    on, off, itself = counting["on"], counting["off"], counting["itself"]
    lines = [
        "# The gallery's costs (bench/gallery.py)",
        "",
        f"{datetime.date.today()}, {platform.node()}: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; pier on SQLite + filesystem, one process; client on the same "
        f"machine. Medians of {args.rounds} alternating rounds.",
        "",
        "## Counting downloads on the pull path (manifest GETs)",
        "",
        "| | counting on | counting off | on / off |",
        "|---|---|---|---|",
        f"| GET loop, one connection: time per GET | {on['loop_us']:.0f} us | {off['loop_us']:.0f} us | "
        f"{on['loop_us'] / off['loop_us']:.3f} |",
        f"| server CPU per GET | {on['cpu_us']:.0f} us | {off['cpu_us']:.0f} us | {on['cpu_us'] / off['cpu_us']:.3f} |",
        f"| wrk, 16 connections | {on['rps']:.0f} GETs/s | {off['rps']:.0f} GETs/s | {on['rps'] / off['rps']:.3f} |",
        "",
        f"Loop: {args.gets} GETs per round; wrk: {args.wrk_seconds} s per round. On a busy machine these "
        "end-to-end figures move by more than counting could: what counting itself costs is measured "
        "directly below.",
        "",
        f"- one count (`DownloadCounter.count`, on the event loop, per manifest GET): {itself['count_ns']:.0f} ns, "
        f"{itself['count_ns'] / 1000 / off['cpu_us'] * 100:.3f}% of a manifest GET's server CPU",
        f"- writing a batch of counts for 100 images (every `downloads_flush_seconds`, 5 s by default, on a "
        f"worker thread): {itself['batch_ms']:.1f} ms, {itself['batch_ms'] / 5000 * 100:.2f}% of one core",
        "",
        "## Pages of a large repository",
        "",
        "| page | median | p95 |",
        "|---|---|---|",
        *[f"| {name} | {median:.1f} ms | {p95:.1f} ms |" for name, (median, p95) in pages.items()],
        "",
        f"{args.samples} requests each on one keep-alive connection, after 5 to warm up.",
        "",
    ]
    (HERE / "gallery-results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
