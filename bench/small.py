"""Small requests, where registries spend their life: manifest reads, tokens, DescribeImages pages.

    python bench/small.py [--seconds 10] [--connections 64] [--skip-distribution] [--workers default 1]

Starts distribution 2.8 (Debian's docker-registry) and pier (once per --workers value: `default`, a plain
`pier serve` with no --workers flag, whatever its default is; `1`, `2`, `auto`: `pier serve --workers N`)
on loopback, pushes one small image tagged `latest` into each, and measures with 64 connections (wrk, Lua
scripts for the headers; ab for HEAD, which wrk cannot time when the answer announces a body):
  anonymous manifest GET by tag, by digest, and HEAD by tag, each with a valid anonymous bearer token
  and the Accept lines docker sends;
  pier only: GET /token for an anonymous pull token, a signed GetAuthorizationToken, a signed
  DescribeImages page of 100 images;
with requests/s, p50 and p99, errors, the server's CPU time per request (its whole process tree), and
the peak resident memory of each server's process tree. Prints a table, and the ratio of each pier
figure to distribution's. `bench/run.py` runs the same workloads (`--only small` for them alone) and
writes the table into bench/results.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import Connection
from harness import (
    NAME,
    Distribution,
    PeakMemory,
    Pier,
    Registry,
    cpu_seconds,
    fill_images,
    install,
    signed_script,
    tree,
    wrk,
)

HERE = Path(__file__).resolve().parent
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)
RSS = "peak RSS of the process tree (MiB)"
Table = dict[str, dict[str, dict[str, float]]]  # server -> workload -> figure -> value


def push_small_image(registry: Registry) -> str:
    """One config and one small layer, a manifest tagged `latest`; its digest."""
    connection = Connection(registry.host, registry.port)
    layer, config = b"x" * 1024, json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    digests = {}
    for name, data in (("layer", layer), ("config", config)):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        reply = connection.request("POST", f"/v2/{NAME}/blobs/uploads/", registry.auth)
        location = "/" + reply.headers["location"].split("://", 1)[-1].split("/", 1)[1]
        separator = "&" if "?" in location else "?"
        reply = connection.request("PUT", f"{location}{separator}digest={digest}", registry.auth, body=data)
        assert reply.status == 201, (registry.name, reply.status)
        digests[name] = digest
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digests["config"],
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digests["layer"],
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    headers = {**registry.auth, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    reply = connection.request("PUT", f"/v2/{NAME}/manifests/latest", headers, body=manifest)
    assert reply.status == 201, (registry.name, reply.status)
    connection.close()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def anonymous_token(registry: Registry) -> str | None:
    """A bearer token for an anonymous pull (pier's /token); None where the registry needs none."""
    if not isinstance(registry, Pier):
        return None
    path = f"/token?service=127.0.0.1:{registry.port}&scope=repository:{NAME}:pull"
    reply = Connection(registry.host, registry.port).request("GET", path, keep_body=True)
    return str(json.loads(reply.body)["token"])


def lua_headers(path: Path, headers: dict[str, str]) -> Path:
    path.write_text("".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in headers.items()))
    return path


def ab_head(url: str, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    """HEAD requests with ApacheBench (keep-alive), which reads a HEAD answer without waiting for a body.
    Its errors are its failed requests (connect, receive, length, exceptions) and non-2xx answers."""
    if not shutil.which("ab"):
        install("apache2-utils")
    command = ["ab", "-i", "-k", "-q", "-c", str(connections), "-t", str(seconds), "-n", "10000000"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=False).stdout
    requests = re.search(r"Requests per second:\s+([\d.]+)", out)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    p50, p99 = re.search(r"\s50%\s+(\d+)", out), re.search(r"\s99%\s+(\d+)", out)
    return {
        "rps": float(requests[1]) if requests else 0.0,
        "p50": float(p50[1]) if p50 else 0.0,  # ab reports whole milliseconds
        "p99": float(p99[1]) if p99 else 0.0,
        "errors": (float(failed[1]) if failed else 0.0) + (float(non_2xx[1]) if non_2xx else 0.0),
    }


def measure(registry: Registry, root: Path, seconds: int, connections: int) -> dict[str, dict[str, float]]:
    digest = push_small_image(registry)
    headers = {"Accept": MANIFEST_TYPES}
    token = anonymous_token(registry)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    script = lua_headers(root / f"{registry.name}-manifest.lua", headers)
    base = f"{registry.url}/v2/{NAME}/manifests"
    results: dict[str, dict[str, float]] = {}
    pid = registry.pid()

    def timed(workload: str, run: Any, *args: Any) -> None:
        """One workload, and the server's CPU time (its whole process tree) per request answered."""
        before = cpu_seconds(pid)
        figure = run(*args)
        spent = cpu_seconds(pid) - before
        answered = figure["rps"] * seconds
        figure["cpu_us"] = spent / answered * 1e6 if answered else 0.0
        results[workload] = figure

    with PeakMemory(pid) as memory:
        timed("manifest GET by tag", wrk, f"{base}/latest", connections, seconds, script)
        timed("manifest GET by digest", wrk, f"{base}/{digest}", connections, seconds, script)
        timed("manifest HEAD by tag", ab_head, f"{base}/latest", connections, seconds, headers)
        if isinstance(registry, Pier):
            token_url = f"{registry.url}/token?service=127.0.0.1:{registry.port}&scope=repository:{NAME}:pull"
            timed("GET /token (anonymous)", wrk, token_url, connections, seconds)
            login = signed_script(registry, "GetAuthorizationToken", {}, root / "login.lua")
            timed("signed GetAuthorizationToken", wrk, registry.url + "/", connections, seconds, login)
            fill_images(registry, "pages", 1000)
            page = signed_script(
                registry, "DescribeImages", {"repositoryName": "pages", "maxResults": 100}, root / "pages.lua"
            )
            timed("signed DescribeImages page of 100", wrk, registry.url + "/", connections, seconds, page)
    results[RSS] = {"value": memory.peak, "processes": len(tree(pid))}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--workers",
        nargs="*",
        default=["default", "1"],
        help='pier --workers values to measure; "default" runs `pier serve` without the flag',
    )
    parser.add_argument("--skip-distribution", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pier-bench-", dir=HERE.parent))
    try:
        table = measure_servers(root, args.seconds, args.connections, args.workers, not args.skip_distribution)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(report(table))


def measure_servers(root: Path, seconds: int, connections: int, workers: list[str], distribution: bool = True) -> Table:
    """Every workload on distribution (unless told not to), then on pier once per --workers value
    ("default": no flag), each server started afresh under `root` and stopped after."""
    table: Table = {}
    for which in (["distribution"] if distribution else []) + workers:
        registry: Registry
        if which == "distribution":
            registry = Distribution(root)
        else:
            registry = Pier(root, None if which == "default" else which)
        print(f"-- small requests: {registry.label}", flush=True)
        try:
            table[registry.label] = measure(registry, root, seconds, connections)
        finally:
            registry.stop()
    return table


def report(table: Table) -> str:
    dist = table.get("distribution", {})
    lines = [
        "| workload | server | req/s | p50 ms | p99 ms | errors | server CPU µs/req | req/s vs dist | p99 vs dist |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    workloads = dict.fromkeys(w for results in table.values() for w in results if w != RSS)  # in the order run
    for workload in workloads:
        for server, results in table.items():
            figure = results.get(workload)
            if figure is None:
                continue
            theirs: Any = dist.get(workload) if server != "distribution" else None
            speed = f"{figure['rps'] / theirs['rps']:.2f}x" if theirs and theirs["rps"] else ""
            tail = f"{figure['p99'] / theirs['p99']:.2f}x" if theirs and theirs["p99"] else ""
            lines.append(
                f"| {workload} | {server} | {figure['rps']:,.0f} | {figure['p50']:.2f} | {figure['p99']:.2f} | "
                f"{figure['errors']:.0f} | {figure.get('cpu_us', 0):,.0f} | {speed} | {tail} |"
            )
    for server, results in table.items():
        rss, processes = results[RSS]["value"], results[RSS]["processes"]
        tree_of = f"{processes:.0f} process{'es' if processes != 1 else ''}"
        lines.append(f"| peak RSS of the process tree, MiB ({tree_of}) | {server} | {rss:.0f} | | | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
