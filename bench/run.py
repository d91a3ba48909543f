"""pier beside CNCF distribution: one client, one machine, one disk. Writes bench/results.md and results.png.

    python bench/run.py [--repeat 3] [--seconds 30] [--big-mib 1024] [--only small] [--small-seconds N]
                        [--connections 64] [--output bench/results.md]

Installs Debian's docker-registry (distribution 2.8) and wrk when missing, starts both registries on
loopback with their storage on the same disk, and measures:
  1. push one big blob monolithically  2. push it in 5 MiB chunks  3. pull it
  4. 16 clients pushing and pulling 1 MiB images (ops/s, p50/p99)  5. 64 concurrent pulls of a 100 MiB blob
  6. peak resident memory of each server's process tree during 1 and 5
  7. pier only: signed API calls/s, and DescribeImages page latency with 1,000 and 100,000 images
and beside them the physical limits: sha256 on one core, loopback sendfile, durable disk writes, and
the client's own ceiling against a trivial sink. Each figure is the median of --repeat runs.

Then small requests (bench/small.py's workloads, one run of --small-seconds each, 64 connections): anonymous
manifest GET by tag, by digest and HEAD by tag (wrk with a Lua script for the bearer token and Accept
lines; ab for HEAD), and on pier GET /token, a signed GetAuthorizationToken and a signed DescribeImages
page of 100 images, on distribution, the default `pier serve` (no --workers flag) and `--workers 1`, each
server started afresh: req/s, p50/p99, errors, server CPU per request and peak RSS of the process tree.
`--only small` runs that section alone and writes a report with only its table (give --output to keep
bench/results.md).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import Connection, Sink
from harness import MIB, NAME, Distribution, PeakMemory, Pier, Registry, cpu_seconds, fill_images, signed_script, wrk
from small import Table, measure_servers
from small import report as small_report

from pier.cores import usable_cores

HERE = Path(__file__).resolve().parent


def median_of(repeat: int, run: Callable[[int], float]) -> float:
    return statistics.median(run(i) for i in range(repeat))


# ---------------------------------------------------------------- workloads


class Blob:
    """A big file of random bytes on disk; each repetition pushes it with a distinct 64-byte prefix."""

    def __init__(self, path: Path, mib: int) -> None:
        self.path, self.size = path, mib * MIB
        with open(path, "wb") as handle:
            for _ in range(mib):
                handle.write(os.urandom(MIB))
        self.fd = os.open(path, os.O_RDONLY)

    def variant(self, tag: str) -> tuple[bytes, str]:
        prefix = hashlib.sha256(tag.encode()).hexdigest().encode()
        digest = hashlib.sha256(prefix)
        with open(self.path, "rb") as handle:
            while chunk := handle.read(8 * MIB):
                digest.update(chunk)
        return prefix, "sha256:" + digest.hexdigest()


def push_monolithic(registry: Registry, blob: Blob, tag: str) -> float:
    """POST, then one PUT with the whole blob: the monolithic push every registry supports (distribution
    2.8 does not take the body on the POST itself)."""
    prefix, digest = blob.variant(tag)
    connection = Connection(registry.host, registry.port)
    started = time.perf_counter()
    reply = connection.request("POST", f"/v2/{NAME}/blobs/uploads/", registry.auth)
    location = "/" + reply.headers["location"].split("://", 1)[-1].split("/", 1)[1]
    reply = connection.request(
        "PUT",
        f"{location}{'&' if '?' in location else '?'}digest={digest}",
        registry.auth,
        prefix=prefix,
        file=(blob.fd, 0, blob.size),
    )
    elapsed = time.perf_counter() - started
    assert reply.status == 201, (registry.name, reply.status)
    connection.close()
    return (len(prefix) + blob.size) / MIB / elapsed


def push_chunked(registry: Registry, blob: Blob, tag: str, chunk: int = 5 * MIB) -> float:
    prefix, digest = blob.variant(tag)
    total = len(prefix) + blob.size
    connection = Connection(registry.host, registry.port)
    started = time.perf_counter()
    reply = connection.request("POST", f"/v2/{NAME}/blobs/uploads/", registry.auth)
    location = "/" + reply.headers["location"].split("://", 1)[-1].split("/", 1)[1]
    offset = 0
    while offset < total:  # the first chunk carries the prefix
        first = offset == 0
        size = min(chunk, total - offset)
        file_offset = offset - len(prefix) if not first else 0
        file_count = size - (len(prefix) if first else 0)
        headers = {
            **registry.auth,
            "Content-Range": f"{offset}-{offset + size - 1}",
            "Content-Type": "application/octet-stream",
        }
        reply = connection.request(
            "PATCH", location, headers, prefix=prefix if first else b"", file=(blob.fd, file_offset, file_count)
        )
        assert reply.status == 202, (registry.name, reply.status)
        location = "/" + reply.headers["location"].split("://", 1)[-1].split("/", 1)[1]
        offset += size
    reply = connection.request("PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", registry.auth)
    assert reply.status == 201, (registry.name, reply.status)
    connection.close()
    return total / MIB / (time.perf_counter() - started)


def pull(registry: Registry, digest: str, size: int) -> float:
    connection = Connection(registry.host, registry.port)
    started = time.perf_counter()
    reply = connection.request("GET", f"/v2/{NAME}/blobs/{digest}", registry.auth)
    elapsed = time.perf_counter() - started
    assert reply.status == 200 and reply.length == size, (registry.name, reply.status, reply.length)
    connection.close()
    return size / MIB / elapsed


TAIL = 32  # the random bytes that make each image op's layer its own


def image_ops(registry: Registry, clients: int, seconds: float) -> tuple[float, float, float]:
    """Each op: push a 1 MiB layer and a config, put the manifest, get it back, pull the layer."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    # Each layer is unique (its last bytes are random), but the rest is made and hashed once: a fresh
    # os.urandom(MIB) per op cost this load generator ~4 ms of kernel CPU per op, taken from the two cores
    # it shares with the server it measures.
    head = os.urandom(MIB - TAIL)
    head_hash = hashlib.sha256(head)

    def worker(n: int) -> None:
        connection = Connection(registry.host, registry.port)
        i = 0
        while time.monotonic() < deadline:
            tail = os.urandom(TAIL)
            layer_hash = head_hash.copy()
            layer_hash.update(tail)
            layer, config = head + tail, json.dumps({"architecture": "amd64", "os": "linux", "n": [n, i]}).encode()
            ld, cd = "sha256:" + layer_hash.hexdigest(), "sha256:" + hashlib.sha256(config).hexdigest()
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": cd,
                        "size": len(config),
                    },
                    "layers": [
                        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)}
                    ],
                }
            ).encode()
            started = time.perf_counter()
            for digest, data in ((ld, layer), (cd, config)):
                reply = connection.request("POST", f"/v2/{NAME}/blobs/uploads/", registry.auth)
                location = "/" + reply.headers["location"].split("://", 1)[-1].split("/", 1)[1]
                separator = "&" if "?" in location else "?"
                reply = connection.request("PUT", f"{location}{separator}digest={digest}", registry.auth, body=data)
                assert reply.status == 201, (registry.name, reply.status)
            tag = f"c{n}-{i}"
            headers = {**registry.auth, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            assert connection.request("PUT", f"/v2/{NAME}/manifests/{tag}", headers, body=manifest).status == 201
            accept = {**registry.auth, "Accept": "application/vnd.oci.image.manifest.v1+json"}
            assert connection.request("GET", f"/v2/{NAME}/manifests/{tag}", accept).status == 200
            assert connection.request("GET", f"/v2/{NAME}/blobs/{ld}", registry.auth).length == MIB
            with lock:
                latencies.append(time.perf_counter() - started)
            i += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return len(latencies) / elapsed, p(0.50), p(0.99)


def pull_concurrently(registry: Registry, digest: str, seconds: int) -> tuple[float, float]:
    with PeakMemory(registry.pid()) as memory:
        result = wrk(f"{registry.url}/v2/{NAME}/blobs/{digest}", 64, seconds)
    return result["mib_s"], memory.peak


def page_latency(pier: Pier, repository: str, samples: int = 30) -> tuple[float, float]:
    """Median milliseconds of a DescribeImages page of 100: the first page, and one deep in the listing."""
    first = []
    for _ in range(samples):
        started = time.perf_counter()
        page = pier.ecr.describe_images(repositoryName=repository, maxResults=100)
        first.append(time.perf_counter() - started)
    token, pages = page.get("nextToken"), 1
    while token and pages < 9:  # walk a little way in, then sample there
        page = pier.ecr.describe_images(repositoryName=repository, maxResults=1000, nextToken=token)
        token, pages = page.get("nextToken"), pages + 1
    deep = []
    for _ in range(samples):
        started = time.perf_counter()
        pier.ecr.describe_images(repositoryName=repository, maxResults=100, nextToken=token) if token else None
        deep.append(time.perf_counter() - started)
    return statistics.median(first) * 1000, statistics.median(deep) * 1000


# ---------------------------------------------------------------- physical limits


def sha256_mib_s(mib: int = 512) -> float:
    data, digest = os.urandom(MIB), hashlib.sha256()
    started = time.perf_counter()
    for _ in range(mib):
        digest.update(data)
    return mib / (time.perf_counter() - started)


def disk_mib_s(directory: Path, mib: int = 1024) -> float:
    data = os.urandom(MIB)
    path = directory / "durable-write"
    started = time.perf_counter()
    with open(path, "wb", buffering=0) as handle:
        for _ in range(mib):
            handle.write(data)
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return mib / elapsed


def sendfile_mib_s(blob: Blob) -> float:
    sink = Sink()
    connection = Connection("127.0.0.1", sink.port)
    started = time.perf_counter()
    connection.request("POST", "/", file=(blob.fd, 0, blob.size))
    elapsed = time.perf_counter() - started
    sink.shutdown()
    return blob.size / MIB / elapsed


def client_pull_ceiling(mib: int = 256) -> float:
    sink = Sink(os.urandom(mib * MIB))
    connection = Connection("127.0.0.1", sink.port)
    started = time.perf_counter()
    connection.request("GET", "/")
    elapsed = time.perf_counter() - started
    sink.shutdown()
    return mib / elapsed


def client_ops_ceiling(clients: int, seconds: float) -> float:
    sink = Sink(os.urandom(MIB))
    fake = Registry()
    fake.host, fake.port, fake.name = "127.0.0.1", sink.port, "sink"
    ops, _, _ = image_ops(fake, clients, seconds)
    sink.shutdown()
    return ops


# ---------------------------------------------------------------- report


def measure(registry: Registry, big: Blob, medium: Blob, root: Path, args: argparse.Namespace) -> dict[str, float]:
    r: dict[str, float] = {}
    cpu = cpu_seconds(registry.pid())
    with PeakMemory(registry.pid()) as memory:
        r["push monolithic (MiB/s)"] = median_of(args.repeat, lambda i: push_monolithic(registry, big, f"m{i}"))
    r["peak RSS, monolithic push (MiB)"] = memory.peak
    r["server CPU s per GiB pushed"] = (cpu_seconds(registry.pid()) - cpu) / args.repeat / (big.size / 1024**3)
    r["push 5 MiB chunks (MiB/s)"] = median_of(args.repeat, lambda i: push_chunked(registry, big, f"c{i}"))
    prefix, digest = big.variant("m0")
    cpu = cpu_seconds(registry.pid())
    r["pull (MiB/s)"] = median_of(args.repeat, lambda _: pull(registry, digest, len(prefix) + big.size))
    r["server CPU s per GiB pulled"] = (cpu_seconds(registry.pid()) - cpu) / args.repeat / (big.size / 1024**3)
    ops, p50, p99 = image_ops(registry, 16, args.seconds)
    r["16-client 1 MiB image ops/s"], r["image op p50 (ms)"], r["image op p99 (ms)"] = ops, p50, p99
    push_monolithic(registry, medium, "pull-me")
    _, medium_digest = medium.variant("pull-me")
    runs = [pull_concurrently(registry, medium_digest, 10) for _ in range(args.repeat)]
    r["64-client pull (MiB/s)"] = statistics.median(m for m, _ in runs)
    r["peak RSS, 64-client pull (MiB)"] = max(peak for _, peak in runs)
    if isinstance(registry, Pier):
        script = signed_script(registry, "DescribeRepositories", {}, root / "describe.lua")
        r["signed DescribeRepositories calls/s"] = wrk(registry.url + "/", 16, 10, script)["rps"]
        fill_images(registry, "small", 1000)
        fill_images(registry, "large", args.images)
        script = signed_script(
            registry, "DescribeImages", {"repositoryName": "large", "maxResults": 100}, root / "images.lua"
        )
        r["signed DescribeImages page calls/s"] = wrk(registry.url + "/", 16, 10, script)["rps"]
        r["DescribeImages page, 1,000 images (ms)"], _ = page_latency(registry, "small")
        first, deep = page_latency(registry, "large")
        r[f"DescribeImages page, {args.images:,} images (ms)"] = first
        r[f"DescribeImages deep page, {args.images:,} images (ms)"] = deep
    return r


def measure_workers(
    pier: Pier, workers: int, results: dict[str, dict[str, float]], root: Path, args: argparse.Namespace
) -> None:
    """The workloads that wait on Python, again with another number of pier processes (pier serve --workers)."""
    mine, theirs = results["pier"], results["distribution"]
    try:
        with PeakMemory(pier.pid()) as memory:
            ops, p50, p99 = image_ops(pier, 16, args.seconds)
        measured = {"16-client 1 MiB image ops/s": ops, "image op p50 (ms)": p50, "image op p99 (ms)": p99}
        for figure, value in measured.items():
            mine[f"{figure}, --workers {workers}"] = value
            theirs[f"{figure}, --workers {workers}"] = theirs[figure]
        mine[f"peak RSS, 16-client image ops, --workers {workers} (MiB)"] = memory.peak
        script = signed_script(pier, "DescribeRepositories", {}, root / "describe-workers.lua")
        mine[f"signed DescribeRepositories calls/s, --workers {workers}"] = wrk(pier.url + "/", 16, 10, script)["rps"]
    finally:
        pier.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30, help="length of the 16-client workload, in seconds")
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--images", type=int, default=100_000, help="images in the big DescribeImages repository")
    parser.add_argument("--only", choices=["small"], help="run only this section (small: the small requests)")
    parser.add_argument(
        "--small-seconds", type=int, help="length of each small-request workload (default: --seconds, at most 10)"
    )
    parser.add_argument("--connections", type=int, default=64, help="connections of the small-request workloads")
    parser.add_argument(
        "--output", type=Path, default=HERE / "results.md", help="the report (the chart goes beside it)"
    )
    args = parser.parse_args()
    args.small_seconds = args.small_seconds or min(args.seconds, 10)
    root = Path(tempfile.mkdtemp(prefix="pier-bench-", dir=HERE.parent))  # the same disk for both
    results: dict[str, dict[str, float]] = {}
    limits: dict[str, float] = {}
    small: Table = {}
    try:
        if args.only != "small":
            measure_big(root, results, limits, args)
        (root / "small").mkdir()  # its own servers' data, beside the ones above
        small = measure_servers(root / "small", args.small_seconds, args.connections, ["default", "1"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_report(results, limits, small, args)


def measure_big(
    root: Path, results: dict[str, dict[str, float]], limits: dict[str, float], args: argparse.Namespace
) -> None:
    """The physical limits, then every workload of the docstring's list on pier (the default `pier serve`:
    one process per usable core) and distribution, then the workloads that wait on Python with one process."""
    big = Blob(root / "big.bin", args.big_mib)
    medium = Blob(root / "medium.bin", 100)
    limits["sha256 one core (MiB/s)"] = median_of(args.repeat, lambda _: sha256_mib_s())
    limits["loopback sendfile (MiB/s)"] = median_of(args.repeat, lambda _: sendfile_mib_s(big))
    limits["disk, durable write (MiB/s)"] = median_of(args.repeat, lambda _: disk_mib_s(root))
    limits["client pull ceiling (MiB/s)"] = median_of(args.repeat, lambda _: client_pull_ceiling())
    limits["client 16-client image ops ceiling (ops/s)"] = client_ops_ceiling(16, min(args.seconds, 10))
    for make in (Pier, Distribution):
        registry = make(root)
        print(f"-- {registry.name}", flush=True)
        try:
            results[registry.name] = measure(registry, big, medium, root, args)
        finally:
            registry.stop()
    if usable_cores() > 1:  # the default ran one process per core: the same workloads with one process
        print("-- pier --workers 1", flush=True)
        measure_workers(Pier(root, 1), 1, results, root, args)


def versions() -> dict[str, str]:
    def run(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    import granian

    from pier import __version__

    return {
        "pier": __version__,
        "granian": granian.__version__,
        "python": platform.python_version(),
        "distribution": run("dpkg-query", "-W", "-f=${Version}", "docker-registry"),
        "wrk": run("dpkg-query", "-W", "-f=${Version}", "wrk"),
        "cpus": str(os.cpu_count()),
        "kernel": platform.release(),
    }


def write_report(
    results: dict[str, dict[str, float]], limits: dict[str, float], small: Table, args: argparse.Namespace
) -> None:
    """The report at --output (and the chart beside it): the sections that ran, then bench/notes.md after a
    full run (its reading is of the whole report)."""
    command = "python bench/run.py" + (f" --only {args.only}" if args.only else "")
    lines = [
        f"# pier beside CNCF distribution ({datetime.date.today()})",
        "",
        f"Measured by `{command}` on one machine: both registries on loopback, storage on the same disk, "
        "one client." + ("" if args.only else f" Medians of {args.repeat} runs; the big blob is {args.big_mib} MiB."),
        "",
        "| | " + " | ".join(f"{k}: {v}" for k, v in versions().items()) + " |",
        "|---|" + "---|" * len(versions()),
    ]
    if results:
        pier, dist = results["pier"], results["distribution"]
        lines += ["", "## Physical limits", "", "| limit | value |", "|---|---|"]
        lines += [f"| {k} | {v:,.0f} |" for k, v in limits.items()]
        lines += ["", "## Workloads", "", "| figure | pier | distribution | pier / distribution |", "|---|---|---|---|"]
        for key in pier:
            theirs = dist.get(key)
            ratio = f"{pier[key] / theirs:.2f}x" if theirs else ""
            lines.append(f"| {key} | {pier[key]:,.1f} | {'' if theirs is None else f'{theirs:,.1f}'} | {ratio} |")
    if small:
        lines += [
            "",
            "## Small requests",
            "",
            f"One run of {args.small_seconds} s per workload, {args.connections} connections (wrk -t2 with Lua "
            "scripts for the anonymous bearer token and docker's Accept lines; ab -k for HEAD, in whole "
            "milliseconds), one small image tagged `latest`; each server started afresh. `pier (default)` is "
            "`pier serve` with no --workers flag. Server CPU is the whole process tree's user + system time over "
            "the requests answered; errors are non-2xx answers and socket errors; the peak RSS is the tree's, "
            "over all its workloads.",
            "",
            small_report(small),
        ]
    notes = HERE / "notes.md"  # the hand-written reading of the figures: targets, causes, what would help
    if results and notes.exists():
        lines += ["", notes.read_text().rstrip()]
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if results:
        chart(results["pier"], results["distribution"], args.output.with_suffix(".png"))


def chart(pier: dict[str, float], dist: dict[str, float], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    keys = [k for k in pier if k in dist and ("MiB/s" in k or "ops/s" in k)]
    figure, axis = plt.subplots(figsize=(10, 5))
    positions = range(len(keys))
    axis.barh([p + 0.2 for p in positions], [pier[k] for k in keys], 0.4, label="pier")
    axis.barh([p - 0.2 for p in positions], [dist[k] for k in keys], 0.4, label="distribution 2.8")
    axis.set_yticks(list(positions), keys)
    axis.set_xscale("log")
    axis.set_xlabel("higher is better (log scale)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
