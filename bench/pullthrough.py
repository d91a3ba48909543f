"""A pull-through cache's cost: a first pull through pier against a pull straight from the upstream, and a
pull of what pier has cached. Writes bench/results-pullthrough.md (then bench/notes-pullthrough.md, written by hand).

    python bench/pullthrough.py [--mib 256] [--repeat 5]

The upstream is Debian's docker-registry (distribution 2.8) on loopback, its storage on the same disk as
pier's. Each repetition pushes a new image (a config and one layer of --mib random MiB) to it, then pulls
it three ways, first with skopeo (a real client: it verifies every digest and writes the image to disk,
as docker does), then with a bare HTTP client (bench/client.py, which only counts the bytes: pier's cost
with nothing to hide it):
  1. direct:   from the upstream itself
  2. first:    through pier, which fetches, verifies, stores and streams at once
  3. cached:   through pier again (pier's normal pull, nothing asked of the upstream)
The targets: first <= 1.2x the time of direct; cached at pier's normal pull rate. Each figure is the
median of --repeat runs; the order of 1 and 2 alternates. pier's CPU time (its process, every thread) is
measured around each first pull: on a shared machine it is steadier than any rate, and it is what a
first pull takes from the client and the upstream when they share the cores. The load average at the
start and the end says how busy the machine was.
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import Connection
from harness import ACCOUNT, Distribution, cpu_seconds, install

from tests.server import PierServer

MIB = 1024 * 1024
HERE = Path(__file__).resolve().parent
ALIAS = ACCOUNT["PIER_ALIAS"]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def push_blob(connection: Connection, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    reply = connection.request("POST", f"/v2/{repository}/blobs/uploads/")
    location = "/" + reply.headers["location"].split("://", 1)[-1].split("/", 1)[1]
    reply = connection.request("PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", body=data)
    assert reply.status == 201, reply.status
    return digest


def push_image(upstream: Distribution, repository: str, tag: str, mib: int) -> tuple[str, int]:
    """A config and one layer of random bytes; (the layer's digest, its size)."""
    connection = Connection(upstream.host, upstream.port)
    layer = os.urandom(mib * MIB)
    layer_digest = push_blob(connection, repository, layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    config_digest = push_blob(connection, repository, config.encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": len(layer)}
            ],
        }
    ).encode()
    reply = connection.request(
        "PUT", f"/v2/{repository}/manifests/{tag}", {"Content-Type": OCI_MANIFEST}, body=manifest
    )
    assert reply.status == 201, reply.status
    connection.close()
    return layer_digest, len(layer)


def timed_get(host: str, port: int, path: str, size: int | None = None, headers: dict[str, str] | None = None) -> float:
    connection = Connection(host, port)
    started = time.perf_counter()
    reply = connection.request("GET", path, headers)
    elapsed = time.perf_counter() - started
    assert reply.status == 200 and (size is None or reply.length == size), (path, reply.status, reply.length)
    connection.close()
    return elapsed


def skopeo_pull(source: str, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{source}", f"oci:{out}:v1"],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    shutil.rmtree(out)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="size of each image's layer")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not Path("/usr/bin/docker-registry").exists():
        install("docker-registry")
    root = Path(tempfile.mkdtemp(prefix="pier-bench-pullthrough-"))
    upstream = Distribution(root)
    config = root / "pier.toml"
    config.write_text(
        f'[[pull_through]]\nprefix = "hub"\nupstream = "{upstream.url}"\nallow_anonymous_pull_through = true\n'
    )
    env = {**ACCOUNT, "PIER_LOG_LEVEL": "warning"}
    pier = PierServer(root / "pier", config, env).start()
    accept = {"Accept": OCI_MANIFEST}
    direct, first, cached, manifest = [], [], [], []
    tools: dict[str, list[float]] = {"direct": [], "first": [], "cached": []}
    cpu: dict[str, list[float]] = {"skopeo": [], "bare": []}  # pier's CPU seconds per first pull
    load_before = os.getloadavg()[0]
    assert pier.process is not None
    pid = pier.process.pid
    try:
        for i in range(args.repeat):
            # skopeo: a whole image, verified and written to disk by the client
            repository = f"image{i}"
            push_image(upstream, repository, "v1", args.mib)
            through = f"127.0.0.1:{pier.port}/{ALIAS}/hub/{repository}:v1"
            out = root / "pulled"
            for name in ("direct", "first") if i % 2 == 0 else ("first", "direct"):
                source = f"127.0.0.1:{upstream.port}/{repository}:v1" if name == "direct" else through
                used = cpu_seconds(pid)
                tools[name].append(skopeo_pull(source, out))
                if name == "first":
                    cpu["skopeo"].append(cpu_seconds(pid) - used)
            tools["cached"].append(skopeo_pull(through, out))

            # the bare client: one layer's bytes, nothing else
            repository = f"bench{i}"
            digest, size = push_image(upstream, repository, "v1", args.mib)
            blob = f"/v2/{ALIAS}/hub/{repository}/blobs/{digest}"

            def straight(repository: str = repository, digest: str = digest, size: int = size) -> None:
                direct.append(timed_get(upstream.host, upstream.port, f"/v2/{repository}/blobs/{digest}", size))

            def cache(repository: str = repository, blob: str = blob, size: int = size) -> None:
                path = f"/v2/{ALIAS}/hub/{repository}/manifests/v1"
                manifest.append(timed_get("127.0.0.1", pier.port, path, None, accept))
                used = cpu_seconds(pid)
                first.append(timed_get("127.0.0.1", pier.port, blob, size))
                cpu["bare"].append(cpu_seconds(pid) - used)

            for step in (straight, cache) if i % 2 == 0 else (cache, straight):
                step()
            cached.append(timed_get("127.0.0.1", pier.port, blob, size))
    finally:
        load_after = os.getloadavg()[0]
        pier.stop()
        upstream.stop()
        # Each repetition leaves ~1.5 GiB of images in the upstream and in pier: never leave them behind.
        shutil.rmtree(root, ignore_errors=True)

    def rate(seconds: list[float]) -> float:
        return args.mib / statistics.median(seconds)

    def ratio(over: list[float], base: list[float]) -> str:
        return f"{statistics.median(over) / statistics.median(base):.2f}x"

    def per_gib(seconds: list[float]) -> str:
        return f"{statistics.median(seconds) / (args.mib / 1024):.2f}"

    def runs(seconds: list[float]) -> str:
        return ", ".join(f"{args.mib / each:.0f}" for each in seconds)

    rows = [
        ("skopeo: pull from the upstream itself (MiB/s)", f"{rate(tools['direct']):.0f}"),
        ("skopeo: first pull through pier (MiB/s)", f"{rate(tools['first']):.0f}"),
        ("skopeo: first pull's time / the upstream's (target <= 1.2x)", ratio(tools["first"], tools["direct"])),
        (
            "skopeo: each run, upstream / first through pier (MiB/s)",
            f"{runs(tools['direct'])} / {runs(tools['first'])}",
        ),
        ("skopeo: pier's CPU per GiB of a first pull (s)", per_gib(cpu["skopeo"])),
        ("skopeo: cached pull through pier (MiB/s)", f"{rate(tools['cached']):.0f}"),
        ("bare client: pull from the upstream itself (MiB/s)", f"{rate(direct):.0f}"),
        ("bare client: first pull through pier: fetched, verified, stored, streamed (MiB/s)", f"{rate(first):.0f}"),
        ("bare client: first pull's time / the upstream's", ratio(first, direct)),
        ("bare client: each run, upstream / first through pier (MiB/s)", f"{runs(direct)} / {runs(first)}"),
        ("bare client: pier's CPU per GiB of a first pull (s)", per_gib(cpu["bare"])),
        (
            "bare client: first manifest through pier: fetched, checked, stored (ms)",
            f"{statistics.median(manifest) * 1000:.1f}",
        ),
        ("bare client: cached pull through pier (MiB/s)", f"{rate(cached):.0f}"),
    ]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Pull-through cache: first and cached pulls (bench/pullthrough.py)",
        "",
        f"{when}, {platform.machine()}, {os.cpu_count()} cores, one {args.mib} MiB layer, median of {args.repeat}.",
        "The upstream is distribution 2.8 on loopback; pier, the upstream and the client share the machine.",
        f"Load average (1 min) {load_before:.1f} at the start, {load_after:.1f} at the end.",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    # The hand-written reading of earlier runs (what changed, before and after) stays after the new figures.
    notes = HERE / "notes-pullthrough.md"
    (HERE / "results-pullthrough.md").write_text(text + "\n" + notes.read_text() if notes.exists() else text)


if __name__ == "__main__":
    main()
